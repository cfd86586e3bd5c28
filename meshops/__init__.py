"""The operator side of gke-mesh: the imperative steps, the fleet-state reader and the
offline plan. Step code uses the standard library only, so any `python3` on the PATH of
the machine running `pulumi up` can run it."""
