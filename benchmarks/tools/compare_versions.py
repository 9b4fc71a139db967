"Run a few tiny trainings with resume and print their metrics as JSON, to compare two versions of rlprims: python compare_versions.py <tree with rlprims/>."
import sys, json, tempfile, warnings
sys.path.insert(0, sys.argv[1]); warnings.filterwarnings("ignore")
import rlprims
from rlprims.core import GenerationConfig
from rlprims.generation import load_tokenizer
from rlprims.training import train, tiny_test_model
from rlprims.tasks import ADDITION_REWARDS
try: from rlprims.tasks import create_addition_dataset
except ImportError: from rlprims.tasks import make_addition_dataset as create_addition_dataset
new = hasattr(rlprims.core, "RunConfig")
tok = load_tokenizer()
GEN = GenerationConfig(max_new_tokens=6, temperature=1.0, top_k=0, top_p=1.0)
def go(out, steps, algo, resume=None, **extra):
    runkw = dict(progress=False, seed=5, checkpoint_every=1)
    kw = dict(prompts=create_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=steps, batch_size=2, num_generations=4,
              learning_rate=1e-3, output_dir=out, model=tiny_test_model(), tokenizer=tok, gen_config=GEN, algorithm=algo, resume_from=resume, **extra)
    if new: kw["run"] = rlprims.core.RunConfig(**runkw)
    else: kw.update(runkw)
    return train(**kw).metrics
out = {}
cols = ["reward", "loss", "grad_norm", "entropy", "response_len_mean", "kl_ref", "value_loss", "kept_frac"]
for algo, extra in [("grpo", {}), ("grpo", {"kl_coef": 0.1}), ("dapo", {}), ("ppo", {"train_overrides": {"num_inner_epochs": 2}}), ("rloo", {}), ("online_dpo", {})]:
    d = tempfile.mkdtemp()
    go(d, 3, algo, **extra)
    r = go(d, 4, algo, resume=d + "/checkpoint-3", **extra)
    out[f"{algo}{extra}"] = {c: [round(float(x), 10) for x in r[c]] for c in cols if c in r}
print(json.dumps(out))
