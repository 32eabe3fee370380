"""``python -m rvl_llm`` (and ``accelerate launch -m rvl_llm``) runs the CLI."""

from rvl_llm.cli import main

if __name__ == "__main__":
    main()
