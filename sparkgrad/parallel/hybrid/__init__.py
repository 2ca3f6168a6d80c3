"""The process mesh and hybrid parallelism: one process group per axis of one grid."""
