"""The local lab: a whole cluster on one machine, and the replica-set stand-in it can use."""
