"""The BYO setup: connections (one WHOOP app per environment) and the wizard."""
