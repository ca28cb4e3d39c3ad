"""A CryoBench-style benchmark: data from real structures (atoms, imaging, sets, generate) and metrics."""
