import { z } from 'zod';
import { rolesFor, type Action } from '../auth/permissions';
import { problemSchema } from '../../contracts/apiSchemas';
import type { OperationDocHelpers } from '../day2/vmOperationsOpenApi';
import { catalogueImageSchema, imageImportBody, imageNameParam, imageUpdateBody, importStatusSchema } from './catalogueSchemas';

/** The catalogue's paths in the OpenAPI document (catalogue/catalogueRoutes.ts serves them). */
export function registerCataloguePaths(h: OperationDocHelpers): void {
  const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
  const who = (action: Action) => `Roles: ${rolesFor[action].join(', ')}.`;
  const noImage = json(problemSchema, 'No such image, or one reserved to another org.');
  const startedSchema = z.object({ name: z.string(), workflow_id: z.string(), status_url: z.string() }).meta({ id: 'ImageImportStarted' });
  const params = { params: imageNameParam };

  h.op({
    method: 'get',
    path: '/api/images/{name}',
    operationId: 'showImage',
    summary: 'One catalogue image',
    description: `Its catalogue entry and, once a cluster sync has seen it, its template. ${who('images')}`,
    security: h.secured,
    request: params,
    responses: { 200: json(catalogueImageSchema, 'The image.'), 400: h.invalidBody, 401: h.problems[401], 404: noImage, ...h.temporal },
  });
  h.op({
    method: 'post',
    path: '/api/images',
    operationId: 'importImage',
    summary: 'Import a cloud image into the catalogue',
    description:
      'Starts an image import (workflow imageImport): the node downloads the URL (Proxmox verifies the checksum), pveflow creates a VM from it with the ' +
      'settings a build expects, makes it a template in the pool and adds the image to the catalogue. Its progress: GET /api/image-imports/{name}. ' +
      `A failed or cancelled import leaves nothing behind. ${who('manage-images')}`,
    security: h.secured,
    request: { body: { required: true, content: { 'application/json': { schema: imageImportBody } } } },
    responses: {
      202: json(startedSchema, 'The import started.'),
      400: h.invalidBody,
      ...h.problems,
      409: json(problemSchema, 'An image of that name exists, or an import of it is running.'),
      413: h.tooLarge,
      429: h.tooMany,
      ...h.temporal,
    },
  });
  h.op({
    method: 'patch',
    path: '/api/images/{name}',
    operationId: 'updateImage',
    summary: "Change an image's minimums, orgs or description",
    description: `Applies to new requests; running ones keep their VM. ${who('manage-images')}`,
    security: h.secured,
    request: { ...params, body: { required: true, content: { 'application/json': { schema: imageUpdateBody } } } },
    responses: { 200: json(catalogueImageSchema, 'The image as changed.'), 400: h.invalidBody, ...h.problems, 404: noImage, 413: h.tooLarge, ...h.temporal },
  });
  h.op({
    method: 'post',
    path: '/api/images/{name}/retire',
    operationId: 'retireImage',
    summary: 'Retire an image',
    description: `No new request may name it (rule image-retired); requests that hold a VM of it keep it. ${who('manage-images')}`,
    security: h.secured,
    request: params,
    responses: { 200: json(catalogueImageSchema, 'The image, retired.'), 400: h.invalidBody, ...h.problems, 404: noImage, 429: h.tooMany, ...h.temporal },
  });
  h.op({
    method: 'delete',
    path: '/api/images/{name}',
    operationId: 'deleteImage',
    summary: 'Delete an image from the catalogue',
    description: `Refused while a running request was built from it (their serials are named); retire it first. The template of an image pveflow imported is then destroyed (an imageTemplateRemoval workflow, only a VM carrying the image's marker); a template an image seeded from PVEFLOW_IMAGES names stays in the pool. ${who('manage-images')}`,
    security: h.secured,
    request: params,
    responses: { 204: { description: 'Deleted.' }, 400: h.invalidBody, ...h.problems, 404: noImage, 409: json(problemSchema, 'A running request uses it.'), ...h.temporal },
  });
  h.op({
    method: 'get',
    path: '/api/image-imports/{name}',
    operationId: 'showImageImport',
    summary: "An image import's progress",
    description: `Its stage, the bytes downloaded, its log, and on failure why and what was left behind. ${who('manage-images')}`,
    security: h.secured,
    request: params,
    responses: { 200: json(importStatusSchema, 'The import.'), 400: h.invalidBody, ...h.problems, 404: json(problemSchema, 'No import of that name.'), ...h.temporal },
  });
  h.op({
    method: 'delete',
    path: '/api/image-imports/{name}',
    operationId: 'cancelImageImport',
    summary: 'Cancel a running image import',
    description: `The import stops and removes what it made (the downloaded file, the half-made VM). ${who('manage-images')}`,
    security: h.secured,
    request: params,
    responses: {
      202: json(startedSchema, 'Cancelling: follow status_url.'),
      400: h.invalidBody,
      ...h.problems,
      404: json(problemSchema, 'No import of that name.'),
      409: json(problemSchema, 'The import has ended.'),
      ...h.temporal,
    },
  });
}
