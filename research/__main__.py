"""``python -m research`` runs the ``workbench`` command."""

from research.cli import main

main()
