"""``python -m gofer_cli`` is ``gofer``."""

from gofer_cli.app import main

if __name__ == "__main__":
    main()
