"""``python -m services.gateway`` (or ``dreamforge-gateway``): serve the gateway on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

from services.gateway.app import main

if __name__ == "__main__":
    main()
