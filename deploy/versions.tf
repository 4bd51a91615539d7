terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Checked against the 6.x schema (google_datastore_index is gone since
      # 6.0; composite indexes are google_firestore_index with
      # api_scope = "DATASTORE_MODE_API").
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project
}
