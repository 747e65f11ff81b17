"""A wire-level MongoDB replica-set stand-in for tests and the lab (not for production hubs).

Three MongoDB-protocol servers on loopback (mockupdb speaks the protocol, mongomock stores the
data) share one model of a replica set, so an unmodified pymongo client discovers the
topology, follows the primary and reads from secondaries.
"""

from hubctl.lab.standin.cluster import StandinCluster

__all__ = ["StandinCluster"]
