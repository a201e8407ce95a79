"""The `dreamforge` command: run the whole stack (`up`) and talk to a running one over its REST API."""
