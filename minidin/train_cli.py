"""Sub-commands of ``minidin`` that train and evaluate (filled in by the training module)."""


def add_commands(sub):
    return None
