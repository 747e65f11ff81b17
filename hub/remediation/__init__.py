"""Self-healing under limits: rules in the hub config, evaluated by the master after each
collection round, every decision recorded as a history event with its reason.

rules (config), triggers (what is wrong, and the evidence), ledger (the replica-set records:
budget, breaker, pause, idempotency keys), limits (the decision), actions (what is done),
engine (one round's work), sentences (the history's words).
"""
