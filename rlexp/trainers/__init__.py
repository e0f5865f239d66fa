"""The algorithms' TRL trainers: the subclasses that carry their losses, and the torch functions of their math.

Each algorithm's hyperparameters, checks and math (in its docstring) are in rlexp/algos/<name>.py, which imports
no torch, TRL or transformers, so the command line composes and checks a run in a second; its `build_trainer`
imports the trainer from here when the run starts.
"""
