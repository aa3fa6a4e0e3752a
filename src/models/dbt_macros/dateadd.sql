{#- dateadd(datepart, interval, from_date_or_timestamp): `interval` dateparts
    after (or, negative, before) the given date or timestamp.

    DataFusion 55 cannot multiply an interval by a number, so an `interval`
    that is not a number literal becomes an interval by casting text
    (`cast(cast(n as varchar) || ' day' as interval)`); that also takes
    fractions as Postgres does (1.5 day = 1 day 12 hours) and passes NULL on.
    Month arithmetic clamps to the month's end (Jan 31 + 1 month = Feb 29).

    Result type: for year, quarter, month, week and day the argument's own
    type (a date stays a date, a timestamp keeps its unit and time zone). For
    hour and smaller the argument is cast to `timestamp` first, because
    DataFusion adds an hour to a date by dropping it: the result is a
    timestamp in nanoseconds without time zone (a UTC timestamp keeps its UTC
    wall-clock value; years after 2262 do not fit). A quoted literal
    ('2024-01-31', as dbt's own tests pass) is cast to a date, or to a
    timestamp when it has a time; other text expressions must be cast by the
    caller (DataFusion cannot add an interval to text). -#}
{% macro dateadd(datepart, interval, from_date_or_timestamp) %}
  {{ return(adapter.dispatch('dateadd', 'dbt')(datepart, interval, from_date_or_timestamp)) }}
{% endmacro %}

{% macro default__dateadd(datepart, interval, from_date_or_timestamp) %}
    dateadd(
        {{ datepart }},
        {{ interval }},
        {{ from_date_or_timestamp }}
        )
{% endmacro %}

{% macro sluice__dateadd(datepart, interval, from_date_or_timestamp) -%}
  {%- set part = _sluice_datepart(datepart, 'dateadd',
      ['year', 'quarter', 'month', 'week', 'day', 'hour', 'minute', 'second', 'millisecond', 'microsecond', 'nanosecond']) -%}
  {%- if part == 'quarter' -%}
    {%- set unit = 'month' -%}
    {%- set amount = '(' ~ interval ~ ') * 3' if interval is not number else interval * 3 -%}
  {%- else -%}
    {%- set unit = part -%}
    {%- set amount = interval -%}
  {%- endif -%}
  {%- if amount is number -%}
    {%- set step = "interval '" ~ amount ~ " " ~ unit ~ "'" -%}
  {%- else -%}
    {%- set step = "cast(cast(" ~ amount ~ " as varchar) || ' " ~ unit ~ "' as interval)" -%}
  {%- endif -%}
  {#- one single-quoted literal: 'x' with no lone quote inside -#}
  {%- set from = from_date_or_timestamp | string | trim -%}
  {%- set quoted = from | length >= 2 and from is startingwith("'") and from is endingwith("'")
      and "'" not in (from[1:-1] | replace("''", "")) -%}
  {%- if part in ['year', 'quarter', 'month', 'week', 'day'] and quoted -%}
    (cast({{ from }} as {{ 'timestamp' if ':' in from else 'date' }}) + {{ step }})
  {%- elif part in ['year', 'quarter', 'month', 'week', 'day'] -%}
    (({{ from_date_or_timestamp }}) + {{ step }})
  {%- else -%}
    (cast({{ from_date_or_timestamp }} as timestamp) + {{ step }})
  {%- endif -%}
{%- endmacro %}
