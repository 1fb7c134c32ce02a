//! `canopy bench`: workloads against any ZooKeeper-compatible server (issue 5).
