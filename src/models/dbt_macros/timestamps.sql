{#- current_timestamp(): the statement's start time with its time zone, as
    dbt's adapter tests require: now() as a UTC timestamp in microseconds,
    the type sluice's loads and Delta tables use (sluice's session has no time
    zone, so a bare now() would be a plain timestamp). The backcompat forms
    and snapshot_get_time are plain timestamps (no time zone) holding UTC, as
    dbt's Postgres-style defaults are. -#}
{% macro current_timestamp() -%}
  {{ return(adapter.dispatch('current_timestamp', 'dbt')()) }}
{%- endmacro %}

{% macro sluice__current_timestamp() -%}
    arrow_cast(now(), 'Timestamp(Microsecond, Some("UTC"))')
{%- endmacro %}

{% macro snapshot_get_time() -%}
  {{ return(adapter.dispatch('snapshot_get_time', 'dbt')()) }}
{%- endmacro %}

{% macro default__snapshot_get_time() -%}
    {{ dbt.current_timestamp() }}
{%- endmacro %}

{% macro sluice__snapshot_get_time() -%}
    cast(now() as timestamp)
{%- endmacro %}

{% macro current_timestamp_backcompat() -%}
  {{ return(adapter.dispatch('current_timestamp_backcompat', 'dbt')()) }}
{%- endmacro %}

{% macro default__current_timestamp_backcompat() -%}
    cast(current_timestamp as timestamp)
{%- endmacro %}

{% macro sluice__current_timestamp_backcompat() -%}
    cast(now() as timestamp)
{%- endmacro %}

{% macro current_timestamp_in_utc_backcompat() -%}
  {{ return(adapter.dispatch('current_timestamp_in_utc_backcompat', 'dbt')()) }}
{%- endmacro %}

{% macro default__current_timestamp_in_utc_backcompat() -%}
  {{ return(adapter.dispatch('current_timestamp_backcompat', 'dbt')()) }}
{%- endmacro %}
