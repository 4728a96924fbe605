"""The collaborative fine-tuning system (the main paper, DASHF): see docs/finetune.md."""
