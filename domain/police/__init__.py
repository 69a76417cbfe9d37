"""The police link's rules: data-sharing agreements, what may be uploaded under them and
the record of each upload, police alerts for the security role, and outsider tracing.

The VIID (GA/T 1400) wire format and the client that speaks it live in `police_link/`.
"""
