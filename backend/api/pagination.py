from __future__ import annotations

from typing import Any

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import Count, QuerySet, Window
from rest_framework import pagination

MAX_PAGE_NUMBER = 10**9


class PageNumberPagination(pagination.PageNumberPagination):
    """``{count, next, previous, results}``; clients may ask for up to 100 per page."""

    page_size_query_param = "page_size"
    max_page_size = 100


class CountInPagePaginator(Paginator):
    """Reads the total from ``COUNT(*) OVER ()`` on the page's own rows: one query instead of a
    ``COUNT`` and then the page. Meant for lists the database sorts in full anyway (nearest
    first), where the window adds nothing to the sort; an index-ordered list would lose its
    early stop."""

    def page(self, number: Any) -> Page:
        number = self._positive_int(number)
        bottom = (number - 1) * self.per_page
        queryset: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        rows = list(queryset.annotate(total_in_list=Window(Count("pk")))[bottom : bottom + self.per_page])
        if rows:
            self.__dict__["count"] = rows[0].total_in_list  # Paginator.count is a cached_property
        else:
            self.validate_number(number)  # an empty first page is fine; past the end is EmptyPage
        return Page(rows, number, self)

    def _positive_int(self, number: Any) -> int:
        try:
            value = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if value < 1:
            raise EmptyPage(self.error_messages["min_page"])
        if value > MAX_PAGE_NUMBER:  # its offset would overflow the database's integers
            raise EmptyPage(self.error_messages["no_results"])
        return value


class CountInPagePagination(PageNumberPagination):
    django_paginator_class = CountInPagePaginator
