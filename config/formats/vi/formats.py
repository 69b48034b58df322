"""Vietnamese formats: dates read and typed day first, 24-hour times, decimal comma.

Typed dates are read day first (03/04/2026 is 3 April 2026); ISO dates stay accepted,
since the browsers' date pickers send them whatever the language. Exports and the
interchange format never use these: they write ISO dates and a decimal point.
"""

DATE_FORMAT = "d/m/Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "d/m/Y H:i:s"
YEAR_MONTH_FORMAT = "m/Y"
MONTH_DAY_FORMAT = "d/m"
SHORT_DATE_FORMAT = "d/m/Y"
SHORT_DATETIME_FORMAT = "d/m/Y H:i"
FIRST_DAY_OF_WEEK = 1  # Monday

DATE_INPUT_FORMATS = [
    "%d/%m/%Y",  # 03/04/2026
    "%d/%m/%y",  # 03/04/26
    "%d-%m-%Y",  # 03-04-2026
    "%Y-%m-%d",  # 2026-04-03 (ISO, the date pickers)
]
TIME_INPUT_FORMATS = [
    "%H:%M",  # 14:30
    "%H:%M:%S",  # 14:30:59
]
DATETIME_INPUT_FORMATS = [
    "%d/%m/%Y %H:%M",  # 03/04/2026 14:30
    "%d/%m/%Y %H:%M:%S",  # 03/04/2026 14:30:59
    "%d/%m/%Y",  # 03/04/2026
    "%Y-%m-%d %H:%M",  # 2026-04-03 14:30 (ISO)
    "%Y-%m-%d %H:%M:%S",  # 2026-04-03 14:30:59
    "%Y-%m-%dT%H:%M",  # 2026-04-03T14:30 (the date-time pickers)
    "%Y-%m-%d",  # 2026-04-03
]
DECIMAL_SEPARATOR = ","
THOUSAND_SEPARATOR = "."
NUMBER_GROUPING = 3
