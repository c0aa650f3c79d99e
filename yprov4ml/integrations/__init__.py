"""Integrations of yprov4ml with training frameworks (imported only when used)."""
