"""What runs against a cluster and its fleet: the CLI runner, gcloud and kubectl argv, the
fleet's state and its reader, the inventory and backup of Istio objects, the migration
record, the preconditions and drift check, and the break-glass commands. Standard library
only: the steps run with nothing installed but Python."""
