"""The ``kinko`` command line."""
