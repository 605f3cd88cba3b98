"""Operations: the connection dashboard, the jobs page and Prometheus metrics."""
