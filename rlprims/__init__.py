__version__ = "0.1.0"
# The package is flat: one module per notebook. Every public function is also importable from `rlprims` itself.
from .core import *
from .generation import *
from .rewards import *
from .kl import *
from .rollouts import *
from .algorithms import *
from .precision import *
from .training import *
