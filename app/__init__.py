"""The Streamlit app: dashboards over the query API."""
