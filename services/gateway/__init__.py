"""The HTTP gateway: the REST API, Server-Sent Events and the web page, all over gRPC to the other services."""
