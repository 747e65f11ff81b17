"""hubctl: the operator's CLI for a hubcluster."""
