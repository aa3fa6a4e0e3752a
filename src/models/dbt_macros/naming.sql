{#- dbt's default naming of a node's schema, alias and database. A project
    overrides them by defining a macro of the same name (or a sluice__ one).

    generate_schema_name: target.schema without a custom schema, else
      target.schema ~ '_' ~ the custom schema (trimmed);
    generate_alias_name: the custom alias (trimmed), else the node's name, with
      '_v' ~ version for a versioned model (dots in the version become '_');
    generate_database_name: the custom database, else target.database (none
      when the target has no database). -#}
{% macro generate_schema_name(custom_schema_name=none, node=none) -%}
  {{ return(adapter.dispatch('generate_schema_name', 'dbt')(custom_schema_name, node)) }}
{%- endmacro %}

{% macro default__generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}
    {{ target.schema }}
  {%- else -%}
    {{ target.schema }}_{{ custom_schema_name | trim }}
  {%- endif -%}
{%- endmacro %}

{% macro generate_alias_name(custom_alias_name=none, node=none) -%}
  {{ return(adapter.dispatch('generate_alias_name', 'dbt')(custom_alias_name, node)) }}
{%- endmacro %}

{% macro default__generate_alias_name(custom_alias_name=none, node=none) -%}
  {%- if custom_alias_name -%}
    {{ custom_alias_name | trim }}
  {%- elif node is not none and node.version is defined and node.version is not none and node.version != '' -%}
    {{ node.name }}_v{{ node.version | string | replace('.', '_') }}
  {%- else -%}
    {{ node.name }}
  {%- endif -%}
{%- endmacro %}

{% macro generate_database_name(custom_database_name=none, node=none) -%}
  {{ return(adapter.dispatch('generate_database_name', 'dbt')(custom_database_name, node)) }}
{%- endmacro %}

{% macro default__generate_database_name(custom_database_name=none, node=none) -%}
  {%- if custom_database_name is not none -%}
    {{ custom_database_name }}
  {%- elif target.database is defined -%}
    {{ target.database }}
  {%- endif -%}
{%- endmacro %}
