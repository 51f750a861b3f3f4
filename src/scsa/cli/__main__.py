"""``python -m scsa.cli ...`` (as ``torchrun -m scsa.cli ...`` launches it) is the ``scsa`` command."""

from scsa.cli import main

main()
