"""The local lab: systemd-nspawn hosts with systemd, sshd and their own addresses on a bridge."""
