"""The web console's static files (HTML, CSS, ES modules), served by gsvd.daemon.console."""
