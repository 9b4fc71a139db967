# `python -m rlprims` runs the main job (same as the `rlprims-train` console script).
from rlprims.cli import main

if __name__ == "__main__":
    main()
