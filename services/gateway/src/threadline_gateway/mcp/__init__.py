"""The gateway's MCP server at ``/mcp``: the knowledge base and the assistants as MCP tools and resources.

:mod:`.endpoint` is the ASGI endpoint (authentication, rate limits, the SDK's session manager),
:mod:`.server` wires the SDK's server to the handlers of :mod:`.tools`, :mod:`.assistants` and
:mod:`.resources`, which read the knowledge base through :mod:`.knowledge`.
"""
