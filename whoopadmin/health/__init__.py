"""Connection health: missed and silent webhooks, the rate-budget forecast, the member cap.

Plain functions return each signal as data (Redash's ``monitor.py`` idea): the dashboard,
``/metrics`` and the ``connection_warning`` deliveries all read the same functions
(``health.service``). The cron pass ``health.jobs.evaluate_all`` records each signal's
state and delivers a ``connection_warning`` event when a state changes.
"""
