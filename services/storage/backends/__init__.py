"""Where files live: the Pinata v3 API or a local directory, behind one interface (`FileStore`)."""
