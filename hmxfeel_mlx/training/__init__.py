"""Training: the configuration (``config``) and prompt data (``prompts``); one GRPO step is a
rollout (``rollout``) judged by the frozen base (``judge``, calibrated by ``calibration``), turned
into advantages and a loss (``grpo``) and applied to the LoRA layers (``update``). ``trainer`` runs
the steps and the held-out evaluation (``heldout``, distance to the base in ``divergence``),
writes checkpoints (``checkpoint``) and progress (``progress``); ``selection`` picks the
checkpoint a run is evaluated at."""
