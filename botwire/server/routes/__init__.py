"""The routes of ``botwire serve``, one module per resource."""
