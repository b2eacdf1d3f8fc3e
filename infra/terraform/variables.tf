variable "region" {
  description = "AWS region of the vault."
  type        = string
  default     = "ap-northeast-1"
}

variable "name" {
  description = "Prefix of every resource name (lower case, digits and hyphens)."
  type        = string
  default     = "kinko"
}

variable "node_principal_arns" {
  description = "Roles allowed to assume the node role (for example an ECS task or EC2 instance role); empty means EC2 instances of this account."
  type        = list(string)
  default     = []
}

variable "anchor_retention_days" {
  description = "Compliance-mode retention of every anchored checkpoint (KINKO_AUDIT_ANCHOR_RETENTION_DAYS)."
  type        = number
  default     = 3650
}

variable "create_database" {
  description = "Create an RDS PostgreSQL instance for the catalog and the audit log."
  type        = bool
  default     = false
}

variable "database_subnet_ids" {
  description = "Private subnets of the RDS instance (at least two zones); needed with create_database."
  type        = list(string)
  default     = []
}

variable "database_security_group_ids" {
  description = "Security groups of the RDS instance (allowing 5432 from the nodes only)."
  type        = list(string)
  default     = []
}

variable "database_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m6g.large"
}
