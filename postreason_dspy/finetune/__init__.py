"""Post-reason tuning: LoRA on distilled records, checkpointed, converted to GGUF for the local server."""
