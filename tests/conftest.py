"""Suite-wide settings: offline, quiet, deterministic."""

import os

# Must be set before huggingface_hub is imported anywhere, or each missing download retries.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
