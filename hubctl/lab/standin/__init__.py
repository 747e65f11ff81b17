"""A wire-level MongoDB replica-set stand-in for tests and the lab (not for production hubs).

Three MongoDB-protocol servers on loopback (mockupdb parses the protocol, a thread per
connection answers it, mongomock stores the data) share one model of a replica set, so
unmodified clients (pymongo, mongosh, the Node.js driver) discover the topology, follow the
primary, stream hello and read from secondaries. Transactions are refused, not imitated.
"""

from hubctl.lab.standin.cluster import StandinCluster

__all__ = ["StandinCluster"]
