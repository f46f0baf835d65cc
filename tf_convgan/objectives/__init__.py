"""Pure objectives: losses, penalties, consistency terms, augmentations, instance noise and the consensus term."""
