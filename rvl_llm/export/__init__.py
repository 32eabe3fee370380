"""The export stage: a trained checkpoint -> a standalone Hugging Face model folder (merged or
adapter, tokenizer, recipe, model card) that plain transformers loads and rvl-llm reads as a
checkpoint. Nothing heavy is imported here."""
