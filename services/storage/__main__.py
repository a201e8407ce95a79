"""`python -m services.storage`: run the storage service (same as the `dreamforge-storage` command)."""

from __future__ import annotations

from services.storage.server import main

if __name__ == "__main__":
    main()
