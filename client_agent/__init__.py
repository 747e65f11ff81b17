"""The client agent: bootstrap, failover, policy update, promise runs and the report spool."""
