"""Storage: the artifact store (weights, checkpoints, uploads as objects) and datasets registered by
reference (URIs resolved to object-store or shared-filesystem objects, read in place)."""
