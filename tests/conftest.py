"""Suite-wide settings: offline, quiet, deterministic."""

import os

# Must be set before huggingface_hub is imported anywhere, or each missing download retries.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

# Property tests explore new examples on developer machines; CI (CI=true) replays a fixed
# sequence so a submission's result does not depend on luck. Failures found locally become
# explicit regression tests.
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
