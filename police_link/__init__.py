"""The police link: a GA/T 1400 (视图库, VIID) client in its own process role
(`anxin police-link`), and the receiver of the platform's disposition notifications.
The rules (agreements, what may be sent, alerts, tracing) live in domain/police/."""
