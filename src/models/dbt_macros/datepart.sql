{#- Shared helper of the sluice__ date macros (not a dbt macro).
    Returns the datepart as a lower-case singular name, accepting the forms
    callers pass in dbt projects: day, 'day', "day", DAY, days. Raises a
    compiler error naming the calling macro and the accepted parts otherwise. -#}
{%- macro _sluice_datepart(datepart, macro_name, accepted) -%}
  {%- set aliases = {
      'years': 'year', 'yr': 'year', 'yrs': 'year',
      'quarters': 'quarter', 'qtr': 'quarter',
      'months': 'month', 'mon': 'month', 'mons': 'month',
      'weeks': 'week', 'wk': 'week',
      'days': 'day',
      'hours': 'hour', 'hr': 'hour', 'hrs': 'hour',
      'minutes': 'minute', 'min': 'minute', 'mins': 'minute',
      'seconds': 'second', 'sec': 'second', 'secs': 'second',
      'milliseconds': 'millisecond', 'ms': 'millisecond',
      'microseconds': 'microsecond', 'us': 'microsecond',
      'nanoseconds': 'nanosecond', 'ns': 'nanosecond'
  } -%}
  {%- set part = (datepart | string | replace("'", "") | replace('"', '') | trim | lower) -%}
  {%- set part = aliases[part] if part in aliases else part -%}
  {%- if part not in accepted -%}
    {{- exceptions.raise_compiler_error(
        macro_name ~ ": unsupported datepart `" ~ datepart ~ "`; use one of: " ~ (accepted | join(", "))) -}}
  {%- endif -%}
  {{- return(part) -}}
{%- endmacro -%}

