"""``python -m cg_export``: the same as ``cg-export``."""

from cg_export.cli.export import main

if __name__ == "__main__":
    main()
