__version__ = "0.1.0"
# The package is flat: one module per notebook. Every public function is also importable from `rlprims` itself.
from .core import *
from .models import *
from .generation import *
from .fast_decode import *
from .fused_logprobs import *
from .rewards import *
from .kl import *
from .tools import *
from .rollouts import *
from .continuous import *
from .algorithms import *
from .ppo import *
from .online_dpo import *
from .critic import *
from .tasks import *
from .precision import *
from .distributed import *
from .checkpoints import *
from .metrics import *
from .training import *
