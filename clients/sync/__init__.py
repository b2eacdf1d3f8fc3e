"""Building blocks of the workstation sync client (``kinko sync DIR``).

``naming`` maps titles to file names and back; ``state`` is the client's SQLite state in
``DIR/.kinko/state.db``. Neither talks to the server. ``engine`` runs a sync pass over
:class:`clients.api.KinkoClient`; ``cli`` is the ``kinko sync`` command.
"""
