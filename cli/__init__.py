"""The ``unimo`` command line: a click group with one module per subcommand.

Installed as ``unimo_kit.cli``. Each module parses options and calls one library function;
heavy libraries are imported inside the command bodies, so ``unimo --help`` stays fast.
"""
