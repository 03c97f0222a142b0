"""Pipeline stages: one thin CLI per stage (``python -m nat2.stages.<name>``).

A stage parses its arguments, loads and validates ``params.yaml``, calls ONE library function and writes its
outputs atomically, with a run manifest beside them. Nothing imports this package.
"""
